"""The MLflow model registry: the exported config's logged model as a version with an alias.

`make export` registers the model the chosen trial logged (an MLflow 3 LoggedModel) under a
registered model named after the study, and points the alias `champion` at that version, so
`models:/<study>@champion` always loads what best_config.yaml describes. Exporting the same model
again reuses its version and only moves the alias.
"""

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from harness.urls import scrub_text, with_driver

ALIAS = "champion"


def register_champion(
    uri: str, name: str, model_id: str, run_id: str | None, description: str = ""
) -> str:
    """Register logged model `model_id` as a version of `name` and give it the alias `champion`.

    Args:
        uri: the tracking store (its registry is used).
        name: the registered model's name (created when missing).
        model_id: the LoggedModel's id (a trial's `mlflow_model_id`).
        run_id: the run that logged it.
        description: the registered model's description, when it is created.
    Returns:
        The version number that now carries the alias.
    Raises:
        RuntimeError: the registry refused; the message is one scrubbed line.
    """
    client = MlflowClient(tracking_uri=with_driver(uri), registry_uri=with_driver(uri))
    try:
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description=description or None)
        # an export repeated on the same model moves nothing but the alias
        source = f"models:/{model_id}"
        # the registry's search leaves `model_id` empty (MLflow 3.17): match on the source
        same = [v for v in client.search_model_versions(f"name = '{name}'") if v.source == source]
        if same:
            version = same[0].version
        else:
            version = client.create_model_version(
                name, source=source, run_id=run_id, model_id=model_id
            ).version
        client.set_registered_model_alias(name, ALIAS, version)
    except MlflowException as e:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise RuntimeError(f"the model registry refused: {scrub_text(first)}") from None
    return str(version)

from django.apps import AppConfig


def _targets_changed(project: object, **kwargs: object) -> None:
    # Imported on first use: a worker that only serves reads never loads python-tuf,
    # securesystemslib and the signer back-ends they pull in (boto3 among them).
    from bastion.signing.services import targets_changed

    targets_changed(project, **kwargs)  # type: ignore[arg-type]


class SigningConfig(AppConfig):
    name = "bastion.signing"
    label = "signing"

    def ready(self) -> None:
        # Yanks, un-yanks, deletions and status changes re-sign the project's bin, then snapshot
        # and timestamp, in their own transaction (projects never imports signing).
        from bastion.projects.services import on_metadata_changed

        on_metadata_changed(_targets_changed)

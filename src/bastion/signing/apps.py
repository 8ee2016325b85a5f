from django.apps import AppConfig


class SigningConfig(AppConfig):
    name = "bastion.signing"
    label = "signing"

    def ready(self) -> None:
        # Yanks, un-yanks, deletions and status changes re-sign the project's bin, then snapshot
        # and timestamp, in their own transaction (projects never imports signing).
        from bastion.projects.services import on_metadata_changed
        from bastion.signing.services import targets_changed

        on_metadata_changed(targets_changed)

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "bastion.uploads"
    label = "uploads"

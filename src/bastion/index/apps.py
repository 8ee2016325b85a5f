from django.apps import AppConfig


class IndexConfig(AppConfig):
    name = "bastion.index"
    label = "index"

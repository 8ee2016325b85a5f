from tests.integration.index.test_read_api import published  # noqa: F401

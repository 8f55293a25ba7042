"""The localization HTTP service (FastAPI) and its upload page; see :mod:`geolink.deploy.serve.app`."""

"""paygkit: an open toolkit for pay-as-you-go devices built on OpenPAYGO Token."""

__version__ = "0.1.0"

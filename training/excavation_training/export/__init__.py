"""Policy bundles: the loader (``bundle``, light: torch + numpy + contract) and the exporter
(``torchscript``, needs the training models; import it explicitly)."""

from .bundle import BundleError, PolicyBundle, load_bundle

__all__ = ["BundleError", "PolicyBundle", "load_bundle"]

"""CompressAI's rANS coder without CompressAI's package ``__init__`` and without torch.

``import compressai`` imports every dataset, model, transform and the model zoo, and through its point-cloud
transforms torch_geometric: on the development machine about 4 s and 300 MB more than the layers, entropy models
and rANS coder that sar-codec uses (measured, docs/benchmarks.md), paid by every decode. Here ``compressai`` is
first registered as a package whose ``__init__`` has not run yet, with the two functions its entropy models call
at construction; the submodules then import on their own. Anything else asked of the package (``compressai.zoo``,
``compressai.set_entropy_coder``, ...) runs the real ``__init__`` at that moment, so code that wants the whole
package still gets it. Where ``compressai`` was already imported, nothing changes.

The coder (``compressai.ans``, a pybind11 extension) needs neither torch nor numpy: the torch-free decoder
(:mod:`sar_codec.models.numpy_decoder`) and the residual layer (:mod:`sar_codec.residual`) import it from here;
:mod:`sar_codec.models.compressai_parts` adds the torch layers and entropy models.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

_DEFAULT_CODER = "ans"  # CompressAI's default; sar-codec calls its rANS coder directly


def _register_package() -> None:
    spec = importlib.util.find_spec("compressai")
    if spec is None or spec.loader is None:
        return  # not installed: the imports below raise the usual ImportError
    pkg = importlib.util.module_from_spec(spec)

    def complete(name: str):
        """The real ``__init__``, on first use of an attribute the parts did not define."""
        if name.startswith("__"):
            raise AttributeError(name)
        del pkg.__getattr__
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            spec.loader.exec_module(pkg)
        return getattr(pkg, name)

    pkg.__getattr__ = complete
    pkg.get_entropy_coder = lambda: _DEFAULT_CODER
    pkg.available_entropy_coders = lambda: [_DEFAULT_CODER]
    sys.modules["compressai"] = pkg


if "compressai" not in sys.modules:
    _register_package()

from compressai.ans import RansDecoder, RansEncoder  # noqa: E402  (after the package is registered)

__all__ = ["RansDecoder", "RansEncoder"]

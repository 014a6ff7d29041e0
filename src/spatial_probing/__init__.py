"""spatial-probing: probing classifiers and RSA for spatial relations in text embeddings.

The pipeline stages are subpackages: :mod:`spatial_probing.data` →
:mod:`spatial_probing.embed` → :mod:`spatial_probing.probe` →
:mod:`spatial_probing.rsa` → :mod:`spatial_probing.report`, plus
:mod:`spatial_probing.lab` (matched encoders trained with and without vision).
"""

__version__ = "0.1.0"

"""scikit-learn transformers of kernelzoo approximations.

>>> from kernelzoo.sklearn import KernelFeatures
>>> KernelFeatures(kernel="arccos(degree=1)", method="random-features",
...                budget=256, random_state=0)
KernelFeatures(random_state=0)
"""

from kernelzoo.integrations.sklearn import KernelFeatures

__all__ = ["KernelFeatures"]

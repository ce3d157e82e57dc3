"""Shared numerics of the kernel families, public so that families, approximations
and integrations build on them without reaching into private code.

- :mod:`~kernelzoo.kernels.functional.dot`: gradient-safe dot-product maps
  (arc-cosine functions f_n with analytic derivatives, safe sqrt/div, Kahan angles);
- :mod:`~kernelzoo.kernels.functional.activations`: NNGP/NTK activations and their
  dual maps;
- :mod:`~kernelzoo.kernels.functional.architecture`: the resolved NNGP/NTK
  architecture (:class:`~kernelzoo.kernels.functional.architecture.Net`) and its shapes;
- :mod:`~kernelzoo.kernels.functional.fc`: the fully connected recursion;
- :mod:`~kernelzoo.kernels.functional.conv`: window sums, pooling, the conv
  equal-positions path;
- :mod:`~kernelzoo.kernels.functional.conv_pairs`: the conv all-position-pairs path
  (GAP, pooling) in blocks of image pairs under a memory budget;
- :mod:`~kernelzoo.kernels.functional.conv_fused`: the fused GAP path for small
  images (image pairs innermost, one compiled graph per structure and dtype);
- :mod:`~kernelzoo.kernels.functional.compile`: ``torch.compile`` plumbing;
- :mod:`~kernelzoo.kernels.functional.ckn_ops`: CKN patches, kappa, pooling over
  position pairs.

Modules are imported explicitly (``from kernelzoo.kernels.functional.fc import
fc_block``); this package imports nothing itself.
"""

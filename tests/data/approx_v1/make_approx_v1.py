"""Write approximation files in format kernelzoo-approximation/1 (issue 14).

Run with the code of main at commit 50cc95b on the path (see ../README.md);
today's code writes format 2.
"""

import numpy as np

import kernelzoo as kz

g = np.random.default_rng(14)
x = g.standard_normal((6, 3))
imgs = g.standard_normal((6, 1, 5, 5))
CASES = [
    ("rff", "rbf(lengthscale=1.5)", "rff", dict(budget=8, seed=3), x),
    ("nystrom", "arccos(degree=1, depth=2)", "nystrom", dict(budget=4, seed=1), x),
    ("layerwise", "ckn(filter_size=3, subsampling=2, n_layers=2)", "layerwise",
     dict(budget=[4, 4], seed=2, n_patches=200, kmeans_iters=3), imgs),
]
for name, spec, method, kw, data in CASES:
    a = kz.kernel(spec).approximate(method, **kw).fit(data)
    a.save(f"approx_v1_{name}.pt")
    np.save(f"approx_v1_{name}_gram.npy", a.gram(data).numpy())
np.save("approx_v1_inputs_x.npy", x)
np.save("approx_v1_inputs_images.npy", imgs)

"""kubetrade's test bed: what the tests and benchmarks start, kept out of the product.

The runtime package (``kubetrade``) never imports this one; the product image does not
contain it.  Installed in development environments only (``scripts/setup.sh``).
"""

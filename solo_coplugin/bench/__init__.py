"""Head-to-head benchmarks of X vs CO-X through solo-learn's own scripts (``solo-co-bench``)."""

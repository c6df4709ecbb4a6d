"""The peers benchmark: the same workloads on Stepwise and on the systems a Python team
would pick instead, side by side in one run (``python bench/peers/run.py``)."""

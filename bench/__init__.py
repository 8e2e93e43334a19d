"""`make bench`: the app's throughput, latency and memory against a raw ASGI baseline.

`python -m bench` (bench/harness.py) runs S1-S5 on this machine; `python -m bench.stack`
runs S6 through the compose stack's Traefik. See docs/performance.md.
"""

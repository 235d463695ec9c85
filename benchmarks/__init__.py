"""Benchmarks for *DALL·E 2 from Scratch*: how long the course takes, what a CPU-minute of training buys, how fast
our code runs against the machine's own limits, and how it compares with well-known libraries doing the same work.

``python -m benchmarks`` runs everything and writes ``benchmarks/RESULTS.md`` (tables, with the machine and date)
and its figures; ``python -m benchmarks --tiny`` runs every section at toy size in about a minute, into
``benchmarks/tiny/`` (the test suite does, so the code cannot rot); ``--only SECTION ...`` picks sections, and
sections run apart land in the same RESULTS.md, each stamped with its command, date and commit. Every number in it
comes from the run of its section.

Sections, one module each:

* :mod:`benchmarks.machine`    the machine: cores, threads, torch, device, and its measured float32 matmul rate
* :mod:`benchmarks.speed`      U-Net training throughput (images/s, achieved GFLOP/s) and end-to-end sampling seconds
* :mod:`benchmarks.quality`    accuracy against training minutes: CLIP, text → pixels diffusion,
                               unCLIP's prior and decoder
* :mod:`benchmarks.libraries`  our decoder vs ``diffusers`` and ``dalle2-pytorch``, our prior vs ``dalle2-pytorch``,
                               our CLIP vs ``transformers``: same data, budget and measure
* :mod:`benchmarks.runtime`    the wall time of every lesson notebook in the ``ci`` and ``cpu`` profiles
"""

"""Streaming input pipeline for datasets that do not fit in memory (ImageNet), beside `cnnjax.data.pipeline`.

Host worker processes (grain) decode and augment each host's share of every global batch; the shares are
assembled into one batch-sharded `jax.Array` and fed to the same train step as the in-memory pipeline.
Modules: `ops` (decode, crops, flips; numpy/PIL only), `plan` (which examples form a step's batch, per host),
`loader` (the grain datasets; no JAX, so worker processes start light), `state` (the iterator state kept in
checkpoints), `synthetic` (device-generated batches), `inputs` (wiring into the experiment and the loop).
"""

"""Python stubs that die (an OOM kill, a crash), and bringing their models back: the one package for it.

tritonserver 2.51 (the pip wheel, and the NGC 24.10 image) never restarts a dead stub: the model stays
"ready" and every request fails with "Stub process '<model>_<group>_<index>' is not healthy".

- ``detect``: recognise a dead stub in Triton's errors, and the model an instance belongs to.
- ``recovery``: the gateway's side: the first request that meets a dead stub starts a reload of its model.
- ``processes``: the stub processes of one tritonserver (psutil), which instances have a live process.
- ``healer``: beside each Triton (run by ``model_store.sync``): reload a model that lost a stub before any
  request meets it, and remove orphaned stubs.

The reload itself is ``triton_control``'s (``reload``: a marked config that makes Triton load fresh instances).
"""

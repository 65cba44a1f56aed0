"""The loader: exports Hub checkpoints on demand (for the gateway's ``GATEWAY_AUTOLOAD``) into the repository.

It is the floor above ``export``: it has torch and the exporter, the gateway has neither. The gateway asks it
over HTTP (``loader.app``); it vets the checkpoint (``loader.hub``), runs the export (``loader.jobs``), and
the repository's sync loads the result into Triton as it does any published model.
"""

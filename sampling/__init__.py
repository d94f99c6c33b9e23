"""sampling stage."""

from sampling._lazy_hub import import_datatrove_io

# Before any sampling module imports datatrove: keeps huggingface_hub's HTTP stack out of local runs.
import_datatrove_io()

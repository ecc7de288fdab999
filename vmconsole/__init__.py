"""vmconsole: a terminal operations console for the VMs of a SEAPATH cluster."""

__version__ = "0.1.0"

"""The pure heart of vmconsole: values, names, rules and XML, with no I/O and no other vmconsole import."""

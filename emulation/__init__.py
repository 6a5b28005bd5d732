"""The emulation layer: the Mininet builder, the delay line, the run manifest and progress
output. Above the topology model, the controllers and the services; below the CLI."""

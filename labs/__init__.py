"""The course labs: handouts (NAME.md) and their Mininet CLI scripts (NAME.cli), shipped as
package data so a wheel-installed infralab finds them (infralab.labs checks them)."""

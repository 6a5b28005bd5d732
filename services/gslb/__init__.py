"""GSLB: health-checked, load-distributing DNS across data centres."""

"""A small web server for the data centres: says who answered, can be told to fail."""

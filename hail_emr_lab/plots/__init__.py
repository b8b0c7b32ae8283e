"""Plots: names, the local store and its index, pulls from the cluster, rendering."""

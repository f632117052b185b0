"""Reads for the browser pages, one module per page: `jobs` (the jobs list with child-job counts), `runs` (a
dataset's runs and runs side by side), `gans` (a dataset's CycleGANs) and `dataset` (the dataset page's cleaning
summary, also the health report's counts). Pages only read through here; each caller imports the page's module."""

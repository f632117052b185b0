"""Browser pages for curators and reviewers: jobs, classifier runs and their comparison, CycleGANs, datasets."""

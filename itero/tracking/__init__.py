"""Run directory, metrics, console progress, plots and the run report."""

"""Mass production: plans, the dask engine, clusters."""

"""The sharded Zarr cohort store (numpy/zarr only; torch only in store.torch)."""

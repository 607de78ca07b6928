"""Reports on the rollup tables: capacity planning (utilization, headroom, forecast, rightsizing) and
chargeback (rate cards, costs, CSV/Parquet/XLSX/FOCUS exports). Each module computes polars DataFrames;
rendering (``export``, ``charts``) is a separate step."""

"""Per-client analytics computed in Python beside the dbt models: statistical estimates that SQL
expresses badly (such as the BG/NBD probability that a client is still buying, in
``winback.analytics.bgnbd``), computed from per-client purchase summaries built in the warehouse.
"""

"""The measures: dbt build, publication and the `opte` command line."""

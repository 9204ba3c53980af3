"""`crmbot`: the command line that sets up, trains and runs 小助手 (see `crmbot --help`)."""

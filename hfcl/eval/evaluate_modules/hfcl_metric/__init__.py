"""The `hfcl_metric` evaluate module (a package only so that it installs with hfcl)."""

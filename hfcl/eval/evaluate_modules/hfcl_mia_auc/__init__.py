"""The `hfcl_mia_auc` evaluate module (a package only so that it installs with hfcl)."""

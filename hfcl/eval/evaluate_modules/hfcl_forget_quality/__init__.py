"""The `hfcl_forget_quality` evaluate module (a package only so that it installs with hfcl)."""

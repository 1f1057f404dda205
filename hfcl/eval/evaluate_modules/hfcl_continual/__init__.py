"""The `hfcl_continual` evaluate module (a package only so that it installs with hfcl)."""

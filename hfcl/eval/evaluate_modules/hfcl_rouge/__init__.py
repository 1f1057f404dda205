"""The `hfcl_rouge` evaluate module (a package only so that it installs with hfcl)."""

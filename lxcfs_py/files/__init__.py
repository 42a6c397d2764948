"""One module per virtual file: collect inputs for a request, render bytes."""

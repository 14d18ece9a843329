"""The caching mirror server: upstream, downloads, pages, the web layer."""

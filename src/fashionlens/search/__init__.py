"""Search and recommend: index a catalog, query it by text or photo, judge it over the whole gallery."""

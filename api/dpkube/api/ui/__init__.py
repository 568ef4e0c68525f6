"""The web dashboard's presentation: server-side templates, inline SVG charts, the stylesheet, form checks."""

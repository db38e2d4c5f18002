"""Generator of Apache/mod_wsgi daemon configs."""

"""HTTP blueprints. They only translate HTTP to calls on plain modules and back."""

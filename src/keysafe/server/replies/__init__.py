"""Reply models: documentation of what each route answers (``responses={200: {"model":
...}}``), never ``response_model`` (which would filter the reply). Fields follow the
dicts the services build; extra fields are allowed, so adding one breaks no client."""

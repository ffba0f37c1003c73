"""django-oauth-toolkit's own URLs under /o/ (unmodified: every endpoint ends in a slash), a
login page for its device pages, and one protected view to use a token on."""

from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path
from oauth2_provider.decorators import protected_resource


@protected_resource(scopes=["read"])
def me(request):
    """A protected resource: who the bearer token belongs to."""
    return JsonResponse({"user": request.resource_owner.username})


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("api/me/", me),
]

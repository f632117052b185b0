"""API tokens: log in for one, log out (revoke the token in use), log out everywhere (revoke all of one's tokens).
Tokens are django-rest-knox's, stored hashed with an expiry (curation/tokens.py)."""
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.authentication import ExpiringTokenAuthentication
from curation.api.throttles import LoginThrottle
from curation.tokens import issue_token, revoke_tokens

_TOKEN = inline_serializer("IssuedToken", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()})
_REVOKED = inline_serializer("RevokedTokens", {"revoked": serializers.IntegerField()})


class TokenLoginApi(APIView):
    """Exchange a user name and password for a new API token (`Authorization: Token <token>`), valid until `expiry`
    (FER_TOKEN_TTL_HOURS). The token is shown once: only its digest is stored. Rate-limited per client address.
    `python manage.py drf_create_token USER` makes one without a password."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]
    serializer_class = AuthTokenSerializer

    @extend_schema(request=AuthTokenSerializer, responses={200: _TOKEN})
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        row, token = issue_token(serializer.validated_data["user"])
        return Response({"token": token, "expiry": row.expiry})

    def finalize_response(self, request, response, *args, **kwargs):
        """A token is shown once: no cache (a browser's, a proxy's) may keep the answer."""
        response = super().finalize_response(request, response, *args, **kwargs)
        add_never_cache_headers(response)
        response["Pragma"] = "no-cache"
        return response


class TokenLogoutApi(APIView):
    """Revoke the token this request is authenticated with."""

    authentication_classes = [ExpiringTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenLogoutAllApi(APIView):
    """Revoke every token of the signed-in user (by token, or by session from the browser)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: _REVOKED})
    def post(self, request):
        return Response({"revoked": revoke_tokens(request.user)})

"""A token name is unique per user, decided by the database constraint in one step."""

from __future__ import annotations

import pytest
from django.utils import timezone

from bastion.actors import Actor
from bastion.audit.models import Event
from bastion.tokens.errors import TokenNameInUse
from bastion.tokens.models import ApiToken
from bastion.tokens.services import create_token

pytestmark = pytest.mark.django_db


def test_a_second_token_with_the_same_name_is_refused_and_leaves_nothing(alice, bob):
    create_token(actor=Actor.operator(), user=alice, name="ci", now=timezone.now())
    events = Event.objects.count()
    with pytest.raises(TokenNameInUse):
        create_token(actor=Actor.operator(), user=alice, name="ci", now=timezone.now())
    assert ApiToken.objects.filter(user=alice).count() == 1
    assert Event.objects.count() == events
    # names are per user
    create_token(actor=Actor.operator(), user=bob, name="ci", now=timezone.now())

"""Reminders for the signed-in employee: follow-ups, birthdays in 7 days, lapsed customers, care notices.

"今天要跟进谁", "这周谁过生日", "哪些客户很久没下单了": the message picks the section it asks
about (all of them when it names none); care notices are what proactive care sent the employee in
the last days, complaint deadlines among them. Each due follow-up comes with two buttons: 记录跟进 (starts
logging a visit with that customer) and 标记完成 (the same intent with the task's id, which
completes the task first). What is due, who has a birthday and who has lapsed is decided by
`crm_store.reminders` and `crm_store.lapse` for the employee's scope.
"""

from typing import Final

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.support import StoreUnavailable, latest_entity, latest_text, staff_actor, store_or_apology
from crm_store import clock
from crm_store.errors import CrmError
from crm_store.formatting import cn_date
from crm_store.reminders import FollowUp, Reminders, complete_task, reminders
from crm_store.staff_formatting import birthday_lines, lapsed_lines, notice_lines, task_customer
from crm_store.staff_phrases import reminder_sections

MAX_LISTED: Final = 8
"""Longer lists are cut: the rest is in the CRM."""


def _follow_up_response(task: FollowUp) -> str:
    """Its buttons: 记录跟进 needs a customer, 标记完成 a task (not a visit's next date)."""
    if task.customer_id and task.task_id is not None:
        return "utter_reminder_follow_up"
    return "utter_reminder_next_visit" if task.customer_id else "utter_reminder_task"


def tell_reminders(dispatcher: CollectingDispatcher, found: Reminders, asked: set[str]) -> None:
    """The asked sections, each follow-up with its buttons, and the card for the web page."""
    today = clock.today()
    if "follow_ups" in asked:
        if not found.follow_ups:
            dispatcher.utter_message(response="utter_no_follow_ups")
        for task in found.follow_ups[:MAX_LISTED]:
            dispatcher.utter_message(
                response=_follow_up_response(task),
                customer=task_customer(task.customer_name),
                title=task.title,
                due=cn_date(task.due_date, today=today),
                customer_id=task.customer_id,
                task_id=task.task_id,
            )
    if "birthdays" in asked:
        lines = birthday_lines(found.birthdays, today=today)
        dispatcher.utter_message(
            response="utter_reminder_birthdays" if lines else "utter_no_birthdays", lines=lines
        )
    if "lapsed" in asked:
        lines = lapsed_lines(found.lapsed)
        dispatcher.utter_message(
            response="utter_reminder_lapsed" if lines else "utter_no_lapsed", lines=lines
        )
    if "notices" in asked:
        lines = notice_lines(found.notices[:MAX_LISTED])
        dispatcher.utter_message(
            response="utter_reminder_notices" if lines else "utter_no_notices", lines=lines
        )
    dispatcher.utter_message(json_message={"card": "reminders", "data": found.to_json()})


class ActionListReminders(Action):
    """Lists the employee's reminders; a task id in the payload (标记完成) completes that task first."""

    def name(self) -> str:
        return "action_list_reminders"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        task_id = latest_entity(tracker, "task_id")
        try:
            with store_or_apology(dispatcher, "listing reminders") as session:
                actor = staff_actor(tracker, session)
                if not actor.is_staff:
                    dispatcher.utter_message(response="utter_staff_only")
                    return []
                if task_id:
                    done = complete_task(session, actor, int(task_id))
                    session.commit()
                    dispatcher.utter_message(response="utter_task_done", title=done.title)
                found = reminders(session, actor, today=clock.today())
        except StoreUnavailable:
            return []
        except (CrmError, ValueError):
            dispatcher.utter_message(response="utter_task_not_found")
            return []
        if found.empty:
            dispatcher.utter_message(response="utter_no_reminders")
            return []
        tell_reminders(
            dispatcher, found, {"follow_ups"} if task_id else reminder_sections(latest_text(tracker))
        )
        return []

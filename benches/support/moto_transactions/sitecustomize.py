"""moto's DynamoDB TransactWriteItems without its whole-table copy, for the DynamoDB benches.

Python imports this module at start-up when its folder is on PYTHONPATH; it changes nothing
unless HANKO_MOTO_ITEM_ROLLBACK=1 is set as well.

moto 5 (moto/dynamodb/models/__init__.py, DynamoDBBackend.transact_write_items) deep-copies
every table a transaction names before applying it, to roll back on failure. Each transaction
then costs time in proportion to the table's size (1.6 ms empty, 70 ms at 4,000 items), so a
burst of N findings costs O(N^2) and the 10,000-finding burst cannot be measured at all.

This replacement keeps moto's semantics and its error answers, and copies only the items the
transaction names. What it keeps, as the API reference states it:

* "TransactWriteItems is a synchronous write operation that groups up to 100 action requests.
  [...] The actions are completed atomically so that either all of them succeed, or all of
  them fail." (API Reference, TransactWriteItems): every condition is evaluated first; if any
  fails, nothing is written and TransactionCanceledException carries one reason per item, in
  order, as moto answers it.
* "You can't target the same item with multiple operations within the same transaction": the
  same MultipleTransactionsException (a ValidationException) as moto.
* Each item's condition is evaluated against the item as it was before the transaction. moto
  evaluates item i after applying items 0..i-1, but those are other items (the rule above),
  so the result is the same.
* If applying fails midway (moto's own validation inside put/update/delete), the items already
  written are restored from their copies before the error is raised, as moto's table copy did.
"""

import copy
import os

if os.environ.get("HANKO_MOTO_ITEM_ROLLBACK") == "1":
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models import get_filter_expression as _filter  # moto's own import

    def transact_write_items(self, transact_items):
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        seen = set()
        ops = []
        errors = []
        for item in transact_items:
            original_item = None
            if len(list(item.keys())) > 1:
                raise TransactWriteSingleOpException
            try:
                op_type, op = next(iter(item.items()))
                if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                    raise ValueError("Unsupported transaction operation")
                table_name = op["TableName"]
                if op_type == "Put":
                    attrs = op["Item"]
                    table = self.get_table(table_name)
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                else:
                    key = op["Key"]
                unique = (str(table_name), str(dict(sorted(key.items()))))
                if unique in seen:
                    raise MultipleTransactionsException()
                seen.add(unique)
                current = self.get_item(table_name, key)
                condition = op.get("ConditionExpression")
                if condition is not None:
                    check = _filter(
                        condition,
                        op.get("ExpressionAttributeNames"),
                        op.get("ExpressionAttributeValues"),
                    )
                    if not check.expr(current):
                        if (
                            op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                            and current
                        ):
                            original_item = current.to_json()["Attributes"]
                        raise ConditionalCheckFailed(item=original_item)
                ops.append((op_type, op, table_name, key, copy.deepcopy(current)))
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                raise
            except ConditionalCheckFailed as e:
                errors.append(("ConditionalCheckFailed", str(e.message), original_item))
            except Exception as e:  # noqa: E722, as moto captures them
                errors.append((type(e).__name__, str(e), original_item))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)

        applied = []
        try:
            for op_type, op, table_name, key, before in ops:
                names = op.get("ExpressionAttributeNames")
                values = op.get("ExpressionAttributeValues")
                if op_type == "Put":
                    self.put_item(
                        table_name,
                        op["Item"],
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )
                elif op_type == "Delete":
                    self.delete_item(
                        table_name,
                        key,
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )
                elif op_type == "Update":
                    self.update_item(
                        table_name,
                        key,
                        update_expression=op["UpdateExpression"],
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )
                applied.append((table_name, key, before))
        except Exception:
            for table_name, key, before in reversed(applied):
                if before is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, before.to_json()["Attributes"])
            raise

    DynamoDBBackend.transact_write_items = transact_write_items
